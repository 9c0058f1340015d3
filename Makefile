# The two commands (see README.md): `make dev` runs Sixpence locally, `make test` runs every test.
# Both install what they need (Azurite from npm, Python test tools into .venv) on first use.

.PHONY: dev test lint bench package

dev:
	@scripts/dev.sh

test:
	@scripts/test.sh

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

package:
	@scripts/package.sh
