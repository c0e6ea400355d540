#!/bin/bash
# Problem 4: predict the digits of IMG_DIR with the SWD model adapted to DOMAIN.
#   bash hw3_p3.sh IMG_DIR DOMAIN OUT.csv     DOMAIN: mnistm (from usps), svhn (from mnistm), usps (from svhn)
set -euo pipefail
if [ "$#" -ne 3 ]; then
    echo "usage: bash $0 IMG_DIR DOMAIN(mnistm|svhn|usps) OUT.csv" >&2
    exit 2
fi
here=$(dirname "$0")
case "$2" in
    mnistm) name=swd_usps-mnistm.pt ;;
    svhn) name=swd_mnistm-svhn.pt ;;
    usps) name=swd_svhn-usps.pt ;;
    *) echo "error: unknown target domain '$2': choose mnistm, svhn or usps" >&2; exit 2 ;;
esac
if [ ! -d "$1" ]; then
    echo "error: image folder not found: $1" >&2
    exit 2
fi
ckpt=$(python3 "$here/fetch.py" "$name")
python3 "$here/predict.py" --checkpoint "$ckpt" --img-dir "$1" --target "$2" --out "$3"
