#!/bin/sh
# install-deps.sh: what the end-to-end tests need on a fresh Debian machine.
#
#   chromium           the browser the playground test drives (/usr/bin/chromium);
#                      playwright-core never downloads one of its own
#   fonts-wqy-microhei CJK glyphs, so names in the sandbox data render in the
#                      screenshot instead of empty boxes
#
# then the npm packages that e2e/package-lock.json pins. Run as root (CI is).
set -eu
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi 'wqy'; then
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei
fi
npm ci --no-audit --no-fund --loglevel=error
