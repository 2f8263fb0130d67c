#!/usr/bin/env bash
# `npm run demo`: a real backup and restore on the embedded local-directory store.
# Backs up examples/ and docs/ to .vaultik-demo/repo, restores the latest snapshot and
# compares it with the originals. Everything it makes stays under .vaultik-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=.vaultik-demo
vaultik() { node bin/vaultik.js "$@"; }

rm -rf "$demo/restore"
mkdir -p "$demo"
if [ ! -f "$demo/key.txt" ]; then
  vaultik keygen -o "$demo/key.txt" >/dev/null
fi
recipient=$(sed -n 's/^# public key: //p' "$demo/key.txt")

cat > "$demo/vaultik.yml" <<YAML
# The source side holds only the public key.
age_recipient: $recipient
source_dirs:
  - $PWD/examples
  - $PWD/docs
exclude:
  - "*.tmp"
store: $PWD/$demo/repo
index_path: $PWD/$demo/state/index.sqlite
YAML

echo "== backup (source side: public key only)"
vaultik backup "$demo/vaultik.yml"
echo
echo "== snapshots (no key needed)"
vaultik snapshots "$PWD/$demo/repo" ""
echo
# The recovery side holds the private key; its snapshot cache stays inside the demo directory.
export VAULTIK_PRIVATE_KEY_FILE="$demo/key.txt" VAULTIK_CACHE_DIR="$demo/cache"
echo "== ls (recovery side: what the snapshot holds under examples/)"
vaultik ls "$PWD/$demo/repo" "" latest "$PWD/examples"
echo
echo "== restore (recovery side: private key)"
vaultik restore "$PWD/$demo/repo" "" latest "$demo/restore"
diff -r examples "$demo/restore$PWD/examples"
diff -r docs "$demo/restore$PWD/docs"
echo
echo "restored tree matches the originals: $demo/restore$PWD"
