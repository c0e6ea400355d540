#!/usr/bin/env bash
# Problem 1: 32 faces decoded from N(0, I) noise by the VAE, as a 4x8 grid (fig1_4).
# usage: bash hw3_p1.sh OUT.png
set -euo pipefail
if [ "$#" -ne 1 ]; then
    echo "usage: bash hw3_p1.sh OUT.png" >&2
    exit 2
fi
here=$(dirname "$0")
ckpt=$(python3 "$here/fetch.py" vae.pt)
python3 "$here/sample.py" --checkpoint "$ckpt" --out "$1"
