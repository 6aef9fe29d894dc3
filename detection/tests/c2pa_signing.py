"""Sign images with C2PA manifests in the tests: a throwaway certificate authority and signer
made on the spot (never downloaded), the way a camera or an editing tool would sign."""

from __future__ import annotations

import datetime
import functools
import io
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

AI_GENERATED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Faceproof tests"),
        ]
    )


def _usage(*, signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not signs_certificates,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


@functools.cache
def signing_credentials() -> tuple[bytes, bytes]:
    """(certificate chain, private key) in PEM: a signer certified by a self-signed CA.

    C2PA refuses a self-signed signing certificate itself, as a real tool's would be refused.
    """
    now = datetime.datetime.now(datetime.UTC)
    start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    authority_key = ec.generate_private_key(ec.SECP256R1())
    authority = (
        x509.CertificateBuilder()
        .subject_name(_name("Faceproof test CA"))
        .issuer_name(_name("Faceproof test CA"))
        .public_key(authority_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(signs_certificates=True), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(authority_key.public_key()), critical=False
        )
        .sign(authority_key, hashes.SHA256())
    )
    signer_key = ec.generate_private_key(ec.SECP256R1())
    signer = (
        x509.CertificateBuilder()
        .subject_name(_name("Faceproof test signer"))
        .issuer_name(authority.subject)
        .public_key(signer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(signs_certificates=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(authority_key.public_key()),
            critical=False,
        )
        .sign(authority_key, hashes.SHA256())
    )
    chain = signer.public_bytes(serialization.Encoding.PEM) + authority.public_bytes(
        serialization.Encoding.PEM
    )
    key = signer_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return chain, key


def ai_edit_manifest(tool: str = "FaceSwapper", version: str = "2.1") -> dict[str, Any]:
    """A manifest such as a generative tool writes: made by a trained model, then edited."""
    return {
        "claim_generator_info": [{"name": tool, "version": version}],
        "title": "swapped.jpg",
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {"action": "c2pa.created", "digitalSourceType": AI_GENERATED},
                        {"action": "c2pa.edited", "softwareAgent": {"name": tool}},
                    ]
                },
            }
        ],
    }


def c2pa_signed(data: bytes, manifest: dict[str, Any], mime_type: str = "image/jpeg") -> bytes:
    import c2pa

    chain, key = signing_credentials()
    info = c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, key, None)
    signed = io.BytesIO()
    with c2pa.Signer.from_info(info) as signer, c2pa.Builder(manifest) as builder:
        builder.sign(signer, mime_type, io.BytesIO(data), signed)
    return signed.getvalue()
