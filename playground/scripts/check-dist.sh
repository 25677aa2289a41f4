#!/bin/sh
# check-dist.sh: fails when the committed dist/ differs from a fresh build.
#
# It installs exactly what package-lock.json records (npm ci), builds into a
# temporary folder and compares that with dist/ file by file. Run it after
# changing src/, index.html, vite.config.js or a dependency: if it fails, run
# `npm run build` and commit dist/.
set -eu
cd "$(dirname "$0")/.."
npm ci --no-audit --no-fund --loglevel=error
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
npx --no-install vite build --outDir "$tmp/dist" --emptyOutDir --logLevel warn
if ! diff -r dist "$tmp/dist"; then
	echo "playground/dist is not what the sources build: run 'cd playground && npm ci && npm run build' and commit dist/" >&2
	exit 1
fi
echo "playground/dist matches a fresh build"
