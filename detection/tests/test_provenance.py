"""What an upload says about itself (EXIF, XMP, C2PA), read before the re-encoding strips it,
stored as a summary and shown on the result page, the case page and in the API."""

from __future__ import annotations

import io
import json
from unittest import mock

import pytest
from django.contrib.auth.models import User
from django.core.files.storage import default_storage
from django.test import Client
from django.urls import reverse
from PIL import ExifTags, Image

from conftest import TEST_FRAMES
from detection import services
from detection.models import Submission
from detection.provenance import read_provenance
from detection.tests.c2pa_signing import ai_edit_manifest, c2pa_signed
from detection.tests.factories import UserFactory, make_analysed
from moderation import services as moderation_services
from moderation.tests.factories import ModeratorFactory

pytestmark = pytest.mark.django_db

XMP_HISTORY = b"""<?xpacket begin="" id="W5M0MpCehiHzreSzNTczkc9d"?>
<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">
<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"
  xmlns:xmpMM="http://ns.adobe.com/xap/1.0/mm/"
  xmlns:stEvt="http://ns.adobe.com/xap/1.0/sType/ResourceEvent#"
  xmp:CreatorTool="Adobe Photoshop 25.0">
 <xmpMM:History><rdf:Seq>
  <rdf:li stEvt:action="created" stEvt:softwareAgent="Adobe Photoshop 25.0"
    stEvt:when="2024-05-01T10:11:12+02:00"/>
  <rdf:li rdf:parseType="Resource"><stEvt:action>saved</stEvt:action>
    <stEvt:softwareAgent>Adobe Photoshop 25.0 (Generative Fill)</stEvt:softwareAgent>
    <stEvt:changed>/</stEvt:changed></rdf:li>
 </rdf:Seq></xmpMM:History>
</rdf:Description></rdf:RDF></x:xmpmeta>
<?xpacket end="w"?>"""

XMP_WITH_ENTITIES = b"""<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<x:xmpmeta xmlns:x="adobe:ns:meta/">&b;</x:xmpmeta>"""

LATITUDE = (47.0, 22.0, 31.4159)


@pytest.fixture(autouse=True)
def no_broker() -> object:
    with mock.patch("detection.tasks.analyze_submission.delay") as delay:
        yield delay


@pytest.fixture
def uploader() -> User:
    return UserFactory.create(username="photographer")


def frame() -> Image.Image:
    return Image.open(TEST_FRAMES / "real_frame_1.jpg").convert("RGB")


def camera_jpeg(*, xmp: bytes | None = None) -> bytes:
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "Canon"
    exif[ExifTags.Base.Model] = "EOS R5"
    exif[ExifTags.Base.Software] = "Adobe Photoshop 25.0"
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.DateTimeOriginal] = "2024:05:01 10:11:12"
    details[ExifTags.Base.OffsetTimeOriginal] = "+02:00"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = LATITUDE
    buffer = io.BytesIO()
    options: dict[str, object] = {"exif": exif.tobytes(), "quality": 90}
    if xmp is not None:
        options["xmp"] = xmp
    frame().save(buffer, format="JPEG", **options)
    return buffer.getvalue()


def uploaded(uploader: User, data: bytes, name: str = "photo.jpg") -> Submission:
    return services.submission_create(uploader=uploader, data=data, filename=name).submission


def test_camera_software_and_capture_time_are_kept_and_gps_only_as_present(
    uploader: User,
) -> None:
    submission = uploaded(uploader, camera_jpeg())
    exif = Submission.objects.get(pk=submission.pk).provenance["exif"]
    assert exif == {
        "camera_make": "Canon",
        "camera_model": "EOS R5",
        "software": "Adobe Photoshop 25.0",
        "captured_at": "2024:05:01 10:11:12 +02:00",
        "gps_present": True,
    }
    stored = json.dumps(submission.provenance)
    assert "31.4159" not in stored and "47" not in stored and "GPS" not in stored
    # The stored image itself carries none of it.
    with default_storage.open(str(submission.image.name)) as image_file:
        assert not Image.open(image_file).getexif()


def test_a_photo_without_metadata_says_so(uploader: User) -> None:
    buffer = io.BytesIO()
    frame().save(buffer, format="PNG")
    assert uploaded(uploader, buffer.getvalue()).provenance == {
        "exif": None,
        "xmp": None,
        "c2pa": None,
        "unreadable": [],
    }


def test_xmp_edit_history_is_summarised(uploader: User) -> None:
    xmp = uploaded(uploader, camera_jpeg(xmp=XMP_HISTORY)).provenance["xmp"]
    assert xmp["creator_tool"] == "Adobe Photoshop 25.0"
    assert xmp["history"] == [
        {
            "action": "created",
            "software": "Adobe Photoshop 25.0",
            "when": "2024-05-01T10:11:12+02:00",
            "changed": None,
        },
        {
            "action": "saved",
            "software": "Adobe Photoshop 25.0 (Generative Fill)",
            "when": None,
            "changed": "/",
        },
    ]
    assert xmp["ai_generated"] is False


def test_xmp_declaring_entities_is_not_parsed_and_the_photo_is_still_accepted(
    uploader: User,
) -> None:
    submission = uploaded(uploader, camera_jpeg(xmp=XMP_WITH_ENTITIES))
    assert submission.provenance["xmp"] is None
    assert submission.provenance["unreadable"] == ["xmp"]
    assert submission.provenance["exif"]["camera_make"] == "Canon"


def test_a_c2pa_manifest_is_read_with_its_claims(uploader: User) -> None:
    buffer = io.BytesIO()
    frame().save(buffer, format="JPEG", quality=90)
    signed = c2pa_signed(buffer.getvalue(), ai_edit_manifest())

    c2pa = uploaded(uploader, signed).provenance["c2pa"]
    assert c2pa["validation_state"] == "valid"
    # Intact, but the test authority is on no trust list.
    assert c2pa["validation_codes"] == ["signingCredential.untrusted"]
    assert c2pa["claim_generator"] == "FaceSwapper 2.1"
    assert c2pa["signed_by"] == "Faceproof test signer"
    assert [action["action"] for action in c2pa["actions"]] == ["c2pa.created", "c2pa.edited"]
    assert c2pa["actions"][1]["software"] == "FaceSwapper"
    assert c2pa["ai_generated"] is True
    assert c2pa["ai_assertions"] == ["c2pa.created: trainedAlgorithmicMedia"]


def test_a_manifest_altered_after_signing_reads_as_invalid() -> None:
    buffer = io.BytesIO()
    frame().save(buffer, format="JPEG", quality=90)
    signed = bytearray(c2pa_signed(buffer.getvalue(), ai_edit_manifest()))
    signed[-5000] ^= 0xFF  # inside the picture's data, which the manifest's hash covers
    image = Image.open(io.BytesIO(bytes(signed)))

    c2pa = read_provenance(bytes(signed), image, "image/jpeg")["c2pa"]
    assert c2pa["validation_state"] == "invalid"
    assert "assertion.dataHash.mismatch" in c2pa["validation_codes"]


def test_provenance_shows_on_the_result_page_the_case_page_and_in_the_api(
    client: Client, uploader: User
) -> None:
    buffer = io.BytesIO()
    frame().save(buffer, format="JPEG", quality=90)
    submission = uploaded(uploader, c2pa_signed(buffer.getvalue(), ai_edit_manifest()))
    make_analysed(submission, verdict=Submission.Verdict.FAKE)
    case = moderation_services.review_case_open(submission=submission)
    assert case is not None

    client.force_login(uploader)
    page = client.get(reverse("detection:submission-detail", args=[submission.pk]))
    assert 'id="provenance-ai"' in page.content.decode()
    assert "FaceSwapper 2.1" in page.content.decode()
    api = client.get(reverse("api:submission-detail", args=[submission.pk])).json()
    assert api["provenance"]["c2pa"]["ai_generated"] is True
    assert api["provenance"]["c2pa"]["claim_generator"] == "FaceSwapper 2.1"

    client.force_login(ModeratorFactory.create())
    case_page = client.get(reverse("moderation:case-detail", args=[case.pk])).content.decode()
    assert 'id="provenance-c2pa"' in case_page and 'id="provenance-ai"' in case_page
