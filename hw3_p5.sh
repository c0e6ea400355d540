#!/bin/bash
# Problem 5 (later years): write 100 generated digits of each class, 0_001.png ... 9_100.png, into OUT_DIR.
# Usage: bash hw3_p5.sh OUT_DIR      OUT_DIR must be new or empty; it appears whole or not at all.
set -euo pipefail
if [ "$#" -ne 1 ]; then
    echo "usage: bash $0 OUT_DIR" >&2
    exit 2
fi
here=$(dirname "$0")
ckpt=$(python3 "$here/fetch.py" digits.pt)
python3 "$here/generate_digits.py" --checkpoint "$ckpt" --out-dir "$1"
