"""Writes the golden extract under tests/golden/extract/ from the literal content below.

Only encodes: PAS lines as cp1252 with CRLF, PCS lines as UTF-8 with LF. Every value is chosen by
hand (see CASES.md); nothing is computed. Run: .venv/bin/python tests/golden/make_extract.py
A PCS entry that is a dict is written with json.dumps; a str is written as it stands (bad lines).
An empty string is a blank line (D2) and still counts as a physical line (D1).
"""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).parent / "extract"

# fmt: off
PAS: dict[str, list[str]] = {
    "patient.csv": [
        "PATID;PNR;ENAMN;FNAMN;KON;AVLIDEN;SKYDD;POSTNR;KOMMUN",
        "1001; 198507142381 ; Öberg ;Åsa Maria;K;;N;503 32;",  # line 2
        "1002;194811034570;Karlsson;Per Erik;;;;503 40;1490",  # line 3
        "1004;196202281249;Nilsson;Anna;K;;J;41319;1480",  # line 4
        '1003;199005723367;Müller;"Renée";K;;J;50431;1490',  # line 5
        "1005;19450829K088;Andersson;Kim;M;;N;;1490",  # line 6
        "1006;197306151537;Ström;Lars;M;;N;50630;1490",  # line 7
        "1007;197009093910;Berg;Jonas;K;;N;50764;1490",  # line 8
        "1008;193112241181;Holm;Greta;K;2023-02-01;S;51331;1490",  # line 9
        "1009;195506307759;Sandström;Göran;M;2090-01-01;N;50455;1490",  # line 10
        "1011;202401010208;Ekström;Saga;K;;;50335;1490",  # line 11
        "1012;196604122843;;Maria;K;;N;50332;1490",  # line 12
        "1013;198202225192;Lundgren;Ola;X;;N;50332;1490",  # line 13
        "1014;;Persson;Eva;K;;N;50332;1490",  # line 14
        "1015;199901019999;Trasig",  # line 15: 3 fields instead of 9
        "998;196202281249;Nilsson;Anna Lena;K;;N;;1490",  # line 16
    ],
    "kontakt.csv": [
        "KONTAKTID;PATID;KONTAKTTYP;ENHET;INDATUM;UTDATUM;STATUS",
        "5001;1001;SV;MED1;2024-01-15 08:00;2024-01-18 10:30;A",
        "5002;1001;OV; KARD ;2024-07-10 14:30;2024-07-10 15:00;A",
        "5003;1002;AKM;AKM;2024-10-27 02:30;2024-10-27 05:00;A",
        "5004;1002;DAG;DKIR;2024-03-31 02:30;2024-03-31 06:00;A",
        "5005;1004;OV;MED2;2024-02-05 09:00;2024-02-05 09:15;A",
        "5006;1006;SV;MED1;2024-03-01 10:00;2024-03-04 12:00;A",
        "5007;1006;OV;MED1;2024-03-10 10:00;;M",
        "5009;1003;OV;MED3;2024-04-02 09:00;2024-04-02 09:30;A",
        "5010;1003;SV;MED3;2024-05-06 08:00;2024-05-08 12:00;M",
        "5011;1007;OV;MED1;2024-04-10 10:00;2024-04-09 16:00;A",
        "5012;1008;OV;GER;2023-03-03 23:30;;A",
        "5013;1008;OV;GER;2023-03-04 00:30;;A",
        "5014;1011;SV;BARN;2024-01-01 00:30;2024-01-04 11:00;A",
        "5015;1011;AKM;BARN;2023-12-31 23:30;;A",
        "5016;7777;OV;MED1;2024-02-01 10:00;;A",
        "5017;;OV;MED1;2024-02-01 11:00;;A",
        "5018;1005;XYZ;MED1;2024-02-01 12:00;;A",
        "5019;1005;OV;LAB9;2024-02-01 13:00;;A",
        "5020;1005;OV;MED3;;;A",
        "5021;1009;OV;ONK;2024-09-02 13:00;2024-09-02 14:00;A",
        "5022;1003;OV;KVK;2024-12-12 10:00;2024-12-12 11:00;A",
    ],
    "diagnos.csv": [
        "KONTAKTID;DIAGNOSKOD;DIAGNOSTYP;REGDATUM",
        "5001;j189;H;2024-01-15",
        "5001; I109 ;B;2024-01-16",
        "5001;;B;2024-01-15",
        "5002;I48.9;H;2024-07-10",
        "5002;e11 9;B;2024-07-10",
        "5003;S720;H;2024-10-27",
        "",
        "5005;E119;H;2024-02-05",
        "5006;J189;H;2024-03-01",
        "5007;J069;H;2024-03-10",
        "5009;I109;H;2024-04-02",
        "5010;K802;H;2024-05-06",
        "5021;C509;H;2024-09-02",
        "5021;C509;H;2024-09-02",
        "5021;Q999;B;2024-09-02",
        "8888;J189;H;2024-01-01",
        "5013;R074;H;2023-13-45",
        "5014;Z000;H;2024-01-01",
    ],
    "atgard.csv": [
        "KONTAKTID;KVAKOD;DATUM",
        "5001; af021 ;2024-01-15",  # line 2
        "5001;DT016;",  # line 3
        "5003;NFJ 59;2024-10-27",  # line 4
        "5004;jka21;2024-03-31",  # line 5
        "5005;UJK02;2024-02-05",  # line 6
        "",  # line 7: blank, not a record
        "5006;TFE00;2024-03-01",  # line 8
        "5009;AF021;2024-04-02",  # line 9
        "5010;UJK02;2024-05-06",  # line 10
        "5021;XYZ99;2024-09-02",  # line 11
        "9999;AF021;2024-01-01",  # line 12
        "5022;QB010;2024-12-12;X",  # line 13: 4 fields instead of 3
        "5022;QB010;2024-12-12",  # line 14
    ],
}

U1 = "SE2321000131-E000001000001"
U2 = "SE2321000131-E000001000002"
U3 = "SE2321000131-E000001000003"
U4 = "SE2321000131-E000001000004"
U5 = "SE2321000131-E000001000005"
U6 = "SE2321000131-E000001000006"
U7 = "SE2321000131-E000001000007"
U8 = "SE2321000131-E000001000008"
U_UNKNOWN = "SE2321000131-E000009999999"


def _addr(postal, municipality):
    return {"postalCode": postal, "municipality": municipality}


PCS: dict[str, list[object]] = {
    "patients.jsonl": [
        {"id": "P-0000001", "identity": {"type": "pnr", "value": "198507142381"},
         "name": {"family": "Oberg", "given": "Asa"}, "sex": "2", "deceased": None,
         "protected": True, "address": _addr("50330", "1490")},
        {"id": "P-0000002", "identity": {"type": "pnr", "value": "194811034570"},
         "name": {"family": "Karlsson", "given": "Per"}, "sex": "1", "deceased": "2025-06-01",
         "protected": False, "address": _addr("41101", "1480")},
        {"id": "P-0000003", "identity": {"type": "pnr", "value": "197503212461"},
         "name": {"family": "Lindqvist", "given": " Karin "}, "sex": "0", "deceased": None,
         "protected": False, "address": _addr("504 31", "1490")},
        {"id": "P-0000004", "identity": {"type": "resnr", "value": "19810829M071"},
         "name": {"family": "Okänd", "given": "Man"}, "sex": "9", "deceased": None,
         "address": _addr(None, None)},
        {"id": "P-0000005", "identity": {"type": "samnr", "value": "200112634530"},
         "name": {"family": "Nguyen", "given": "Minh"}, "sex": None, "deceased": None,
         "protected": False, "address": _addr("50338", "1490")},
        {"id": "P-0000006", "identity": {"type": "samnr", "value": "199904041119"},
         "name": {"family": "Svensson", "given": "Olle"}, "sex": "3", "deceased": None,
         "protected": False, "address": _addr("50332", "1490")},
        {"id": "P-0000007", "identity": {"type": "pnr", "value": "199310104428"},
         "name": {"family": "Ek", "given": None}, "sex": "2", "deceased": None,
         "protected": False, "address": _addr("50332", "1490")},
        {"id": "P-0000008", "identity": {"type": "pnr", "value": "194401318771"},
         "name": {"family": "Wallin", "given": "Bo"}, "sex": "3", "deceased": None,
         "protected": False, "address": _addr("50332", "1490")},
        {"id": "P-0000009", "identity": {"type": "pnr", "value": "198808082229"},
         "name": {"family": "Åkesson", "given": "Linnéa"}, "sex": "1", "deceased": None,
         "protected": False, "address": _addr("50339", "1490")},
        {"id": "P-0000010", "identity": {"type": "pnr", "value": "198202225192"},
         "name": {"family": "Lundgren", "given": "Ola"}, "sex": "1", "deceased": None,
         "protected": False, "address": _addr("50332", "1490")},
    ],
    "visits.jsonl": [
        {"id": "V-00000001", "patientId": "P-0000003", "type": "visit", "unitHsaId": U1,
         "start": "2024-03-01T09:30:00+01:00", "end": "2024-03-01T09:50:00+01:00", "status": "signed",
         "diagnoses": [{"code": "J06.9", "primary": True}, {"code": "R50.9", "primary": False}]},
        {"id": "V-00000002", "patientId": "P-0000003", "type": "phone", "unitHsaId": U2,
         "start": "2024-06-15T00:30:00+02:00", "end": None, "status": "signed",
         "diagnoses": [{"code": " j459 ", "primary": True}]},
        {"id": "V-00000003", "patientId": "P-0000003", "type": "video", "unitHsaId": U3,
         "start": "2024-02-10T08:00:00+00:00", "end": "2024-02-10T08:20:00+00:00", "status": "signed",
         "diagnoses": [{"code": "X99.9", "primary": False}, {"code": "Z00.0", "primary": True}]},
        {"id": "V-00000004", "patientId": "P-0000001", "type": "home", "unitHsaId": U4,
         "start": "2024-11-05T13:00:00+01:00", "end": "2024-11-05T14:00:00+01:00", "status": "signed",
         "diagnoses": [{"code": "I10.9", "primary": True}]},
        {"id": "V-00000005", "patientId": "P-0000003", "type": "visit", "unitHsaId": U1,
         "start": "2024-04-03T10:00:00+02:00", "end": None, "status": "draft",
         "diagnoses": [{"code": "M54.5", "primary": True}]},
        {"id": "V-00000006", "patientId": "P-0000003", "type": "visit", "unitHsaId": U1,
         "start": "2024-04-04T10:00:00+02:00", "end": None, "status": "deleted",
         "diagnoses": [{"code": "K29.7", "primary": True}]},
        {"id": "V-00000007", "patientId": "P-0000003", "type": "visit", "unitHsaId": U_UNKNOWN,
         "start": "2024-04-05T10:00:00+02:00", "end": None, "status": "signed",
         "diagnoses": [{"code": "J06.9", "primary": True}]},
        {"id": "V-00000008", "patientId": "P-0000003", "type": "chat", "unitHsaId": U1,
         "start": "2024-04-06T10:00:00+02:00", "end": None, "status": "signed", "diagnoses": []},
        {"id": "V-00000009", "patientId": "P-0000003", "type": "visit", "unitHsaId": U1,
         "start": None, "end": None, "status": "signed", "diagnoses": []},
        {"id": "V-00000010", "patientId": "P-0009999", "type": "visit", "unitHsaId": U1,
         "start": "2024-04-08T10:00:00+02:00", "end": None, "status": "signed",
         "diagnoses": [{"code": "R07.4", "primary": True}]},
        {"id": "V-00000011", "patientId": "P-0000006", "type": "visit", "unitHsaId": U1,
         "start": "2024-04-09T10:00:00+02:00", "end": None, "status": "signed",
         "diagnoses": [{"code": "J06.9", "primary": True}]},
        "",  # line 12: blank, not a record
        '{"id": "V-00000016", "patientId": "P-0000003", "type": "visit", "unitHsaId": ',  # line 13
        {"id": "V-00000012", "patientId": "P-0000004", "type": "visit", "unitHsaId": U5,
         "start": "1981-08-29T00:30:00+02:00", "end": "1981-08-29T01:00:00+02:00", "status": "signed",
         "diagnoses": []},
        {"id": "V-00000013", "patientId": "P-0000004", "type": "visit", "unitHsaId": U6,
         "start": "2024-09-10T10:00:00+02:00", "end": "2024-09-09T16:00:00+02:00", "status": "signed",
         "diagnoses": []},
        {"id": "V-00000014", "patientId": "P-0000005", "type": "visit", "unitHsaId": U7,
         "start": "2025-01-20T10:00:00+01:00", "end": "2025-01-20T10:30:00+01:00", "status": "signed",
         "diagnoses": [{"code": "E119", "primary": False}]},
        {"id": "V-00000015", "patientId": "P-0000010", "type": "phone", "unitHsaId": U8,
         "start": "2024-05-05T09:00:00+02:00", "end": None, "status": "signed", "diagnoses": []},
    ],
    "medications.jsonl": [
        {"id": "M-00000001", "patientId": "P-0000003", "atc": " c10aa01 ", "name": " Simvastatin ",
         "dose": "20 mg till natten", "start": "2023-01-01", "end": None},
        {"id": "M-00000002", "patientId": "P-0000003", "atc": "J01CE02", "name": "Kåvepenin",
         "dose": "1 g 3 gånger dagligen", "start": "2024-02-01", "end": "2024-02-10"},
        {"id": "M-00000003", "patientId": "P-0000001", "atc": "C09AA05", "name": "Ramipril",
         "dose": None, "start": "2022-05-01", "end": None},
        {"id": "M-00000004", "patientId": "P-0000003", "atc": "Z99ZZ99", "name": "Okänt preparat",
         "dose": "1 st", "start": "2024-01-01", "end": None},
        {"id": "M-00000005", "patientId": "P-0000003", "atc": None, "name": "Magnecyl",
         "dose": "1 st vid behov", "start": "2024-01-01", "end": None},
        {"id": "M-00000006", "patientId": "P-0000404", "atc": None, "name": "Alvedon",
         "dose": "1 g", "start": "2024-01-01", "end": None},
        {"id": "M-00000007", "patientId": "P-0000006", "atc": "N02BE01", "name": "Alvedon",
         "dose": "1 g", "start": "2024-01-01", "end": None},
        {"id": "M-00000008", "patientId": "P-0000003", "atc": "N02BE01", "name": "  ",
         "dose": "1 g", "start": "2024-01-01", "end": None},
    ],
    "allergies.jsonl": [
        {"id": "A-00000001", "patientId": "P-0000003", "substance": {"atc": "J01CE02"},
         "severity": "severe", "recorded": "2019-05-20"},
        {"id": "A-00000002", "patientId": "P-0000003", "substance": {"text": " Jordnötter "},
         "severity": "moderate", "recorded": None},
        {"id": "A-00000003", "patientId": "P-0000002", "substance": {"atc": "m01ae01"},
         "severity": "mild", "recorded": "2020-11-30"},
        "   ",  # line 4: only spaces -> unparseable (D2)
        {"id": "A-00000004", "patientId": "P-0000003", "substance": {"atc": "J01CA04"},
         "severity": "deadly", "recorded": "2021-01-01"},
        {"id": "A-00000005", "patientId": "P-0000003", "substance": {"text": "Nickel"},
         "severity": None, "recorded": "2021-01-01"},
        {"id": "A-00000006", "patientId": "P-0000003", "substance": {"text": "  "},
         "severity": "mild", "recorded": "2021-01-01"},
        {"id": "A-00000007", "patientId": "P-0000006", "substance": {"text": "Pollen"},
         "severity": "mild", "recorded": "2021-01-01"},
    ],
    "labresults.jsonl": [
        {"id": "L-00000001", "patientId": "P-0000003", "npu": "NPU02319", "value": "142", "unit": "g/L",
         "taken": "2024-03-01T08:10:00+01:00"},
        '{"id": "L-00000099", "patientId": "P-0000003", "npu": "NPU02319", "value": 1',  # line 2
        {"id": "L-00000002", "patientId": "P-0009999", "npu": "NPU01960", "value": "7.1", "unit": "mmol/L",
         "taken": "2024-03-02T08:10:00+01:00"},
        {"id": "L-00000003", "patientId": "P-0000006", "npu": "NPU02319", "value": "130", "unit": "g/L",
         "taken": "2024-03-03T08:10:00+01:00"},
    ],
}
# fmt: on


def main() -> None:
    for name, lines in PAS.items():
        path = ROOT / "pas" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes("".join(line + "\r\n" for line in lines).encode("cp1252"))
    for name, entries in PCS.items():
        path = ROOT / "pcs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        text = "".join((e if isinstance(e, str) else json.dumps(e, ensure_ascii=False)) + "\n" for e in entries)
        path.write_bytes(text.encode("utf-8"))


if __name__ == "__main__":
    main()
