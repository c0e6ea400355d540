#!/bin/bash
# Problem 2: write fig2_2 (32 GAN faces from N(0, I) noise, 4x8) to $1.
# Usage: bash hw3_p2.sh OUT.png
set -euo pipefail
if [ "$#" -ne 1 ]; then
    echo "usage: bash $0 OUT.png" >&2
    exit 2
fi
here=$(dirname "$0")
ckpt=$(python3 "$here/fetch.py" gan.pt)
python3 "$here/sample.py" --checkpoint "$ckpt" --out "$1"
