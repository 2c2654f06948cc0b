# The HTML evidence report in a real browser. Included by the main Makefile (which provides `venv`).
# Debian's chromium is installed when missing (as root, or through sudo); `.ci/run` calls `make test-report`.

SUDO ?= $(shell [ "$$(id -u)" = 0 ] || echo sudo)
CHROMIUM ?= chromium

.PHONY: test-report

## test-report: `keyguard audit --format html` against moto, opened by headless Chromium; the DOM is checked and
## the report and a screenshot are kept in target/keyguard-report/
test-report: venv
	@command -v $(CHROMIUM) >/dev/null 2>&1 || { \
		echo "installing Debian's chromium"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null; }
	KEYGUARD_CHROMIUM=$(CHROMIUM) $(CARGO) test -p keyguard-tests --test report_browser -- --ignored
