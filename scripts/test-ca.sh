#!/usr/bin/env bash
# A throwaway certificate authority and a server certificate it signed, for
# running sealcast over TLS in tests (never for production):
#
#     scripts/test-ca.sh DIR     → DIR/ca.pem, DIR/server.pem, DIR/server.key
#
# The server certificate names localhost and 127.0.0.1. Clients trust
# DIR/ca.pem (Node: NODE_EXTRA_CA_CERTS=DIR/ca.pem).
set -euo pipefail
dir=${1:?usage: scripts/test-ca.sh DIR}
mkdir -p "$dir"
cd "$dir"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=sealcast test CA" -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
