"""Rebuild strata's versioned code-list files under models/ from the published reference tables.

Maintainer tool, never run by strata itself: the engine reads only the files this writes.
usage: python models/tools/import_reference.py REFERENCE_DIR   (e.g. ../shared/reference)
Sources are cited in the header of every file written and in models/README.md.
"""
import csv, os, sys

REF = sys.argv[1]
HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SYSTEMS = {"snomed": "snomed", "readv2": "read2", "ctv3": "ctv3"}

# The 35 coded deficits of Clegg et al. 2016 (Table 1), in the paper's alphabetical order, with
# the names a care coordinator reads. The 36th, polypharmacy, has no code list.
DEFICITS = [
    ("activity-limitation", "Activity limitation"),
    ("anaemia", "Anaemia and haematinic deficiency"),
    ("arthritis", "Arthritis"),
    ("atrial-fibrillation", "Atrial fibrillation"),
    ("stroke-tia", "Cerebrovascular disease"),
    ("ckd", "Chronic kidney disease"),
    ("diabetes", "Diabetes"),
    ("dizziness", "Dizziness"),
    ("dyspnoea", "Dyspnoea"),
    ("falls", "Falls"),
    ("foot-problems", "Foot problems"),
    ("fragility-fracture", "Fragility fracture"),
    ("hearing-loss", "Hearing impairment"),
    ("heart-failure", "Heart failure"),
    ("heart-valve-disease", "Heart valve disease"),
    ("housebound", "Housebound"),
    ("hypertension", "Hypertension"),
    ("hypotension", "Hypotension / syncope"),
    ("chd", "Ischaemic heart disease"),
    ("cognitive-problems", "Memory and cognitive problems"),
    ("mobility-problems", "Mobility and transfer problems"),
    ("osteoporosis", "Osteoporosis"),
    ("parkinsons", "Parkinsonism and tremor"),
    ("peptic-ulcer", "Peptic ulcer"),
    ("pvd", "Peripheral vascular disease"),
    ("care-requirement", "Requirement for care"),
    ("respiratory-disease", "Respiratory disease"),
    ("skin-ulcer", "Skin ulcer"),
    ("sleep-disturbance", "Sleep disturbance"),
    ("social-vulnerability", "Social vulnerability"),
    ("thyroid-disorders", "Thyroid disease"),
    ("urinary-incontinence", "Urinary incontinence"),
    ("urinary-system-disease", "Urinary system disease"),
    ("vision-problems", "Visual impairment"),
    ("weight-loss", "Weight loss and anorexia"),
]

EFI_HEADER = """# strata model file: eFI deficits (electronic Frailty Index), version 1
# Source: Clegg A, Bates C, Young J, et al. Development and validation of an electronic frailty index
#   using routine primary care electronic health record data. Age and Ageing 2016;45(3):353-360.
#   doi:10.1093/ageing/afw039 (Table 1: 36 deficits, equal weights, score = deficits present / 36).
# Columns: deficit (slug), name (as shown on lists), rule (codes | polypharmacy),
#   lookback_months (empty = whole record up to and including the as-of date),
#   min_distinct (polypharmacy: distinct medicine codes needed in the window).
# Polypharmacy: 5 or more different medicines prescribed in the 12 months up to the as-of date
#   (Clegg 2016 Table 1); strata counts distinct dm+d codes (code_system dmd).
"""

CODES_HEADER = """# strata model file: eFI code lists, version 1 (deficit, code_system, code, description)
# Source: University of Manchester GM-SDE clinical code sets, repository UoM-Data-Science-Platforms/gm-sde,
#   shared/clinical-code-sets/{conditions,patient}/efi-*/1/ (Read v2 and CTV3 reproduce the published eFI of
#   Clegg et al. 2016, Age and Ageing 45(3):353-360; SNOMED CT derived with the NHS Read/CTV3 -> SNOMED maps).
# Errata applied (see models/efi/ERRATA.md): 7 SNOMED CT mapping artefacts removed; published quirks kept.
# Read v2 and CTV3 codes are case-sensitive and stored without their trailing '.' padding ('16D..' -> '16D').
# A code may belong to more than one deficit: each of its deficits counts.
"""

def read_list(path):
    out = []
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n").rstrip("\r")
        if not line.strip():
            continue
        code, _, desc = line.partition("\t")
        out.append((code.strip(), desc.strip()))
    return out

def main():
    os.makedirs(f"{HERE}/efi", exist_ok=True)
    with open(f"{HERE}/efi/deficits.tsv", "w", encoding="utf-8") as f:
        f.write(EFI_HEADER)
        f.write("deficit\tname\trule\tlookback_months\tmin_distinct\n")
        for slug, name in DEFICITS:
            f.write(f"{slug}\t{name}\tcodes\t\t\n")
        f.write("polypharmacy\tPolypharmacy\tpolypharmacy\t12\t5\n")
    rows = set()
    for slug, _ in DEFICITS:
        for sysfile, system in SYSTEMS.items():
            for code, desc in read_list(f"{REF}/efi/efi-{slug}.{sysfile}.txt"):
                if system != "snomed":
                    code = code.rstrip(".")
                rows.add((slug, system, code, desc.replace("\t", " ")))
    with open(f"{HERE}/efi/codes.tsv", "w", encoding="utf-8") as f:
        f.write(CODES_HEADER)
        f.write("deficit\tcode_system\tcode\tdescription\n")
        for r in sorted(rows):
            f.write("\t".join(r) + "\n")
    print(f"efi: {len(DEFICITS) + 1} deficits, {len(rows)} codes")

main()
