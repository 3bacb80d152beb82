# The two commands of the README. Each installs what it needs first.
.PHONY: run test setup perf

## Build in release mode and start the dashboard with SQLite and the demo producer.
run:
	scripts/run.sh

## Install test tools and run every test (what CI runs).
test:
	scripts/test.sh

## Install the build tools only.
setup:
	scripts/setup.sh --release --test

## The dashboard's performance figures (release build, ten-minute memory soak; see the README).
perf:
	scripts/perf.sh
