"""Seed corpora for `make fuzz` from the project's fixtures (tests/fixtures), written under the given folder:
<dir>/parse_event/ (every event, sample and invalid input as it is) and <dir>/archive_reader/ (the same,
gzip'd by the target, as CloudTrail log files {"Records": [...]} and as JSON lines)."""

import json
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"


def main(out: pathlib.Path) -> None:
    events, details = [], []
    for path in sorted(FIXTURES.glob("**/*")):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".txt"):
            data = path.read_bytes()
            events.append((path.stem, data))
            try:
                doc = json.loads(data)
            except ValueError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("detail"), dict):
                details.append(doc["detail"])
    parse = out / "parse_event"
    archive = out / "archive_reader"
    for d in (parse, archive):
        d.mkdir(parents=True, exist_ok=True)
    for name, data in events:
        (parse / name).write_bytes(data)
        (archive / f"{name}-raw").write_bytes(b"\x00" + data)
        (archive / f"{name}-gz").write_bytes(b"\x01" + data)
    records = json.dumps({"Records": details}).encode()
    (archive / "log-file-gz").write_bytes(b"\x01" + records)
    lines = b"\n".join(json.dumps({"detail-type": "AWS API Call via CloudTrail", "source": "aws.iam",
                                   "detail": d}).encode() for d in details)
    (archive / "events-jsonl-gz").write_bytes(b"\x03" + lines)
    print(f"fuzz seeds: {len(events)} fixtures into {parse} and {archive}")


if __name__ == "__main__":
    main(pathlib.Path(sys.argv[1]))
