#!/usr/bin/env python3
"""Demo helper: stores a phantom DICOM file in the demo's Orthanc and writes
the patient-view hook call whose prefetch names it (ImagingStudy with a
contained DICOMweb Endpoint), or summarises a hook answer.

  demo-study.py request ORTHANC_URL FILE.dcm OUT.json
  demo-study.py summary ANSWER.json
"""
import json
import sys
import urllib.request


def request(orthanc, path, out):
    with open(path, "rb") as f:
        req = urllib.request.Request(orthanc + "/instances", data=f.read(), method="POST",
                                     headers={"Content-Type": "application/dicom"})
    stored = json.load(urllib.request.urlopen(req))
    tags = json.load(urllib.request.urlopen(f"{orthanc}/instances/{stored['ID']}/simplified-tags"))
    study = {
        "resourceType": "ImagingStudy", "id": "demo-pelvis", "status": "available",
        "subject": {"reference": "Patient/demo-patient"}, "started": "2026-11-28T08:00:00Z",
        "identifier": [{"system": "urn:dicom:uid", "value": "urn:oid:" + tags["StudyInstanceUID"]}],
        "contained": [{"resourceType": "Endpoint", "id": "pacs", "status": "active",
                       "connectionType": {"system": "http://terminology.hl7.org/CodeSystem/endpoint-connection-type", "code": "dicom-wado-rs"},
                       "payloadType": [{"text": "DICOM"}], "address": orthanc + "/dicom-web"}],
        "endpoint": [{"reference": "#pacs"}],
        "series": [{"uid": tags["SeriesInstanceUID"],
                    "modality": {"system": "http://dicom.nema.org/resources/ontology/DCM", "code": tags["Modality"]},
                    "bodySite": {"system": "http://snomed.info/sct", "code": "12921003", "display": "Pelvis"},
                    "instance": [{"uid": tags["SOPInstanceUID"],
                                  "sopClass": {"system": "urn:ietf:rfc:3986", "code": "urn:oid:" + tags["SOPClassUID"]}}]}],
    }
    call = {
        "hook": "patient-view", "hookInstance": "0d5c6a8e-2f1b-4c3d-9e7a-5b4c3d2e1f00",
        "context": {"userId": "Practitioner/demo-radiologist", "patientId": "demo-patient"},
        "prefetch": {"patient": {"resourceType": "Patient", "id": "demo-patient", "gender": "female", "birthDate": "1941-03-02"},
                     "studies": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": study}]}},
    }
    with open(out, "w") as f:
        json.dump(call, f, indent=2)


def summary(path):
    answer = json.load(open(path))
    if not answer.get("cards"):
        print("no cards:", json.dumps(answer)[:300])
        return
    for c in answer["cards"]:
        print(f"{c['indicator'].upper()}: {c['summary']}")
        print()
        print(c.get("detail", ""))
        for s in c.get("suggestions", []):
            kinds = [a["resource"]["resourceType"] for a in s.get("actions", [])]
            print(f"\nsuggestion \"{s['label']}\": create {', '.join(kinds)}")
            for a in s.get("actions", []):
                r = a["resource"]
                if r["resourceType"] == "Task":
                    print(f"  Task priority: {r['priority']} ({r.get('description', '')})")
        for l in c.get("links", []):
            print(f"link ({l['type']}): {l['label']}: {l['url']}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "request":
        request(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 3 and sys.argv[1] == "summary":
        summary(sys.argv[2])
    else:
        sys.exit(__doc__)
