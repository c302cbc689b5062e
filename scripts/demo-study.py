#!/usr/bin/env python3
"""Demo helper: stores a phantom DICOM file in the demo's Orthanc and writes
the patient-view hook call whose prefetch names it (ImagingStudy with a
contained DICOMweb Endpoint), or summarises a hook answer.

  demo-study.py request ORTHANC_URL FILE.dcm OUT.json
  demo-study.py spine ORTHANC_URL FILE.dcm LABELS.csv OUT.json
  demo-study.py summary ANSWER.json

`spine` stores a lateral spine phantom and prefetches, besides the study,
the patient's clinical data as the vertebral service reads it: a DXA
T-score Observation, a back pain Condition with its onset and a fall
Condition, from the phantom's labels.
"""
import csv
import datetime
import json
import sys
import urllib.request


def request(orthanc, path, out, spine=None):
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
                    "bodySite": {"system": "http://snomed.info/sct", "code": "12921003", "display": "Pelvis"} if spine is None
                    else {"system": "http://snomed.info/sct", "code": "421060004", "display": "Spine"},
                    "instance": [{"uid": tags["SOPInstanceUID"],
                                  "sopClass": {"system": "urn:ietf:rfc:3986", "code": "urn:oid:" + tags["SOPClassUID"]}}]}],
    }
    call = {
        "hook": "patient-view", "hookInstance": "0d5c6a8e-2f1b-4c3d-9e7a-5b4c3d2e1f00",
        "context": {"userId": "Practitioner/demo-radiologist", "patientId": "demo-patient"},
        "prefetch": {"patient": {"resourceType": "Patient", "id": "demo-patient", "gender": "female", "birthDate": "1941-03-02"},
                     "studies": {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": study}]}},
    }
    if spine is not None:
        study["id"] = "demo-spine"
        call["prefetch"]["patient"].update(spine["patient"])
        call["prefetch"].update(spine["prefetch"])
    with open(out, "w") as f:
        json.dump(call, f, indent=2)


def spine_data(labels):
    """The Patient and the clinical prefetch of the phantom's last case."""
    row = list(csv.DictReader(open(labels)))[-1]
    day = datetime.date(2026, 11, 28)
    onset = day - datetime.timedelta(days=int(row["symptom_days"]))
    born = day.replace(year=day.year - int(row["age"])) - datetime.timedelta(days=40)
    subject = {"reference": "Patient/demo-patient"}
    tscore = {"resourceType": "Observation", "id": "demo-dxa", "status": "final", "subject": subject,
              "code": {"coding": [{"system": "http://loinc.org", "code": "38267-1", "display": "DXA Lumbar spine [T-score] Bone density"}]},
              "effectiveDateTime": "2026-06-01",
              "valueQuantity": {"value": float(row["tscore"]), "unit": "T-score", "system": "http://unitsofmeasure.org", "code": "{T-score}"}}
    pain = {"resourceType": "Condition", "id": "demo-back-pain", "subject": subject,
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "279039007", "display": "Low back pain"}]},
            "onsetDateTime": onset.isoformat()}
    fall = {"resourceType": "Condition", "id": "demo-fall", "subject": subject,
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                               "code": "confirmed" if row["trauma"] == "true" else "refuted"}]},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "1912002", "display": "Fall"}]},
            "onsetDateTime": (onset - datetime.timedelta(days=1)).isoformat()}
    bundle = lambda *rs: {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in rs]}
    return {"patient": {"gender": "female" if row["sex"] == "F" else "male", "birthDate": born.isoformat()},
            "prefetch": {"bmd": bundle(tscore), "spineHistory": bundle(pain, fall)}}


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
    elif len(sys.argv) == 6 and sys.argv[1] == "spine":
        request(sys.argv[2], sys.argv[3], sys.argv[5], spine_data(sys.argv[4]))
    elif len(sys.argv) == 3 and sys.argv[1] == "summary":
        summary(sys.argv[2])
    else:
        sys.exit(__doc__)
