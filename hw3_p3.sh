#!/usr/bin/env bash
# Problem 3: predict the digits of IMG_DIR with the DANN model adapted to DOMAIN.
#   bash hw3_p3.sh IMG_DIR DOMAIN OUT.csv     DOMAIN: mnistm (from usps), svhn (from mnistm), usps (from svhn)
# predict.py checks DOMAIN and IMG_DIR, fetches the model (fetch.py: wget + SHA-256), then writes OUT.csv.
set -euo pipefail
if [ "$#" -ne 3 ]; then
    echo "usage: bash $0 IMG_DIR DOMAIN(mnistm|svhn|usps) OUT.csv" >&2
    exit 2
fi
python3 "$(dirname "$0")/fetch.py" --check-deps  # one clear line when python3 lacks torch
python3 "$(dirname "$0")/predict.py" --method dann --target "$2" --img-dir "$1" --out "$3"
