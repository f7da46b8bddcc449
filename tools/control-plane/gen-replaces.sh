#!/usr/bin/env bash
# Prints the replace block of kubernetes/go.mod for Kubernetes VERSION (e.g. v1.36.3):
# k8s.io/kubernetes's own go.mod points every staging module (k8s.io/api, k8s.io/client-go,
# ...) at ./staging and requires it at v0.0.0, which a module depending on it cannot use; each
# is pinned here to the matching v0.x release (v1.36.3 -> v0.36.3) from the module proxy.
# To move to another release: set the version on the `require k8s.io/kubernetes` line, replace
# the block with this script's output, run `go mod tidy`.
set -euo pipefail
version=${1:?usage: $0 VERSION (e.g. v1.36.3)}
staging="v0.${version#v1.}"
gomod=$(go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')
echo "replace ("
grep -E '=> \./staging/' "$gomod" | awk -v s="$staging" '{printf "\t%s => %s %s\n", $1, $1, s}'
echo ")"
