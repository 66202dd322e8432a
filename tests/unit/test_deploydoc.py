"""docs/deploy.md's IAM and alarm tables are generated from template.yaml (tools/deploydoc.py)."""

from __future__ import annotations

from pathlib import Path

from tools.deploydoc import render

DEPLOY_MD = Path(__file__).resolve().parents[2] / "docs" / "deploy.md"


def test_the_iam_and_alarm_tables_are_what_the_template_says() -> None:
    # GIVEN the committed docs/deploy.md
    committed = DEPLOY_MD.read_text()
    # WHEN its generated sections are rendered again from the template
    rendered = render(committed)
    # THEN nothing changes (else: `make deploydoc`)
    assert rendered == committed


def test_a_role_the_template_gains_shows_up_in_the_table(tmp_path: Path) -> None:
    # GIVEN the template with one more role, granting one action on one table
    template = (Path(__file__).resolve().parents[2] / "template.yaml").read_text()
    extra = """
  AuditRole:
    Type: AWS::IAM::Role
    Properties:
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement: [{Effect: Allow, Principal: {Service: lambda.amazonaws.com}, Action: sts:AssumeRole}]
      Policies:
        - PolicyName: audit
          PolicyDocument:
            Version: "2012-10-17"
            Statement: [{Effect: Allow, Action: [dynamodb:Scan], Resource: !GetAtt OrdersTable.Arn}]
"""
    marker = "\nResources:\n"
    changed = tmp_path / "template.yaml"
    changed.write_text(template.replace(marker, marker + extra.lstrip("\n") + "\n", 1))
    for directory in ("functions", "layers"):
        (tmp_path / directory).symlink_to(Path(__file__).resolve().parents[2] / directory)
    # WHEN the tables are rendered from it
    rendered = render(DEPLOY_MD.read_text(), changed)
    # THEN the new role is listed with what it may do
    assert "| AuditRole | `dynamodb:Scan` on OrdersTable |  |" in rendered
