# KeyGuard deployment: build the Lambda, lint/scan/test the SAM template, deploy.
# Included by the main Makefile, which provides the `venv` target (.venv from tools/requirements.txt,
# .venv/sam from tools/requirements-sam.txt) and exports KEYGUARD_BIN.

VENV ?= .venv
SAM_VENV ?= $(VENV)/sam
SAM ?= $(SAM_VENV)/bin/sam
CARGO ?= cargo
LAMBDA_TARGET ?= aarch64-unknown-linux-gnu
# cargo-lambda finds zig through the `ziglang` package of the venv; SAM stays offline about telemetry.
TEMPLATE_ENV = PATH="$(abspath $(VENV))/bin:$$PATH" SAM_CLI_TELEMETRY=0
LAMBDA_ZIP = $(or $(CARGO_TARGET_DIR),target)/lambda/bootstrap/bootstrap.zip
CFN_TEMPLATES = template.yaml $(wildcard infra/*.yaml) $(wildcard infra/org/*.yaml)

.PHONY: build deploy lint-template scan-template test-template

## build: the arm64 release Lambda (target/lambda/bootstrap/bootstrap.zip), then its sizes
build: venv
	@command -v rustup >/dev/null 2>&1 && { rustup target list --installed | grep -qx '$(LAMBDA_TARGET)' \
		|| rustup target add $(LAMBDA_TARGET); } || true
	$(TEMPLATE_ENV) $(CARGO) lambda build --release --arm64 -p keyguard-lambda --output-format zip
	@$(VENV)/bin/python -c 'import os, sys, zipfile; p = sys.argv[1]; \
		b = zipfile.ZipFile(p).getinfo("bootstrap").file_size; \
		print(f"{p}: {os.path.getsize(p):,} bytes zipped; bootstrap: {b:,} bytes")' $(LAMBDA_ZIP)

## deploy: sam build + sam deploy (guided the first time, i.e. while samconfig.toml is absent)
deploy: venv
	@test -x $(SAM) || { echo "$(SAM) missing: the SAM CLI venv (tools/requirements-sam.txt) is not installed" >&2; exit 1; }
	$(TEMPLATE_ENV) $(SAM) build --beta-features --template-file template.yaml
	@if [ -f samconfig.toml ]; then \
		echo "sam deploy (settings from samconfig.toml)"; $(TEMPLATE_ENV) $(SAM) deploy; \
	else \
		echo "samconfig.toml not found: guided deploy (region us-east-1; see infra/samconfig.toml.example)"; \
		$(TEMPLATE_ENV) $(SAM) deploy --guided; \
	fi

## lint-template: cfn-lint, then SAM's own transform and lint (both offline)
lint-template: venv
	$(VENV)/bin/cfn-lint $(CFN_TEMPLATES)
	$(TEMPLATE_ENV) $(SAM) validate --lint --template-file template.yaml --region us-east-1

## scan-template: checkov; accepted findings are skipped one by one in the templates, with the reason
## (checkov leaves out resources whose condition is false by default: tests/template/test_lint.py scans the central
## template with every feature on, and checks that each skip is still needed)
scan-template: venv
	$(VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation \
		$(addprefix -f ,$(CFN_TEMPLATES))

## test-template: the rules' pattern and the organization's bus-to-bus forwarding through moto's EventBridge, the
## roles against `keyguard permissions` feature by feature, SetupWindow against the real bootstrap, parliament on
## every IAM policy, the linters' skips
test-template: venv
	@if [ -n "$(KEYGUARD_BIN)" ]; then $(CARGO) build -q -p keyguard-cli -p keyguard-lambda; fi
	$(VENV)/bin/python -m pytest -p no:cacheprovider -q tests/template
