#!/usr/bin/env bash
# Gather, where pip reaches the package index, the wheels a GPU machine lacks, for
# benchmarks/gpu_run.sh to install there without a network. The GPU machines measured so far
# (shared/gpu/README.md: Python 3.12, torch, numpy, xarray, scikit-learn, matplotlib present)
# lacked the workflow stack: snakemake, zarr, numcodecs, jsonschema, and devinterp for the LLC
# comparison. The image's own torch, numpy and friends stay in charge: they are not fetched.
#
#   benchmarks/fetch_wheels.sh .whl            # then carry .whl/ to the GPU machine (~35 MB)
#   PY_VERSION=3.12 benchmarks/fetch_wheels.sh .whl
set -euo pipefail
dest=$(realpath -m "${1:-.whl}")
py=${PY_VERSION:-3.12}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$dest"
# what the image already has (left out, so its builds stay in charge)
present=" attrs certifi charset_normalizer idna jinja2 markupsafe numpy packaging psutil pyyaml requests tabulate typing_extensions urllib3 wrapt "
python3 -m pip wheel -q --no-cache-dir -w "$scratch" "snakemake==9.27.1" "zarr>=3.0" "jsonschema>=4.0" 2>&1 | grep -v "^WARNING" || true
for wheel in "$scratch"/*.whl; do
  file=$(basename "$wheel"); name=$(echo "${file%%-*}" | tr 'A-Z-' 'a-z_'); version=$(echo "$file" | cut -d- -f2)
  [[ $present == *" $name "* ]] && continue
  if [[ $file == *-none-any.whl ]]; then
    cp "$wheel" "$dest/"
  else  # compiled: the same version for the GPU machine's CPython on x86-64 Linux
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$py" --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$dest" "$name==$version" 2>&1 | grep -v "^WARNING" || true
  fi
done
python3 -m pip download -q --no-deps -d "$dest" "devinterp==1.3.2" einops 2>&1 | grep -v "^WARNING" || true
echo "$(ls "$dest" | wc -l) wheels, $(du -sh "$dest" | cut -f1) in $dest"
