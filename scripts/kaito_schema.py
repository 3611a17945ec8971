"""Regenerate ftkit/handoff/schemas/kaito_workspace_v1beta1.json from Kaito's Workspace CRD.

    python scripts/kaito_schema.py path/to/kaito/config/crd/bases/kaito.sh_workspaces.yaml COMMIT

Takes the v1beta1 version's openAPIV3Schema as it is; COMMIT is recorded in the file's $comment.
"""
import json
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parents[1] / "ftkit" / "handoff" / "schemas" / "kaito_workspace_v1beta1.json"


def main(crd_path: str, commit: str) -> None:
    crd = yaml.safe_load(Path(crd_path).read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    schema = version["schema"]["openAPIV3Schema"]
    comment = ("openAPIV3Schema of the v1beta1 Workspace CRD, from kaito-project/kaito "
               f"config/crd/bases/kaito.sh_workspaces.yaml at commit {commit} (Apache-2.0). "
               "Regenerate with scripts/kaito_schema.py.")
    OUT.write_text(json.dumps({"$comment": comment, **schema}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
