"""The review diff: what a template change really does (`python -m generator diff`, docs/diff.md).

`diff_templates(old, new)` takes two `{"<env>/<file>": template dict}` maps and returns a Report; `render`
prints it as text, Markdown or JSON; `cli` loads the two sides (git, a deployed stack, the generator).
One job per module:

    values.py       generic value diff: Change, diff_values, path_text, compact, MISSING
    replacement.py  whether a property change replaces its resource (create-only pointers, aws_facts)
    blast.py        blast radius: replacements followed through references, outputs and parameters
    workflow.py     state machine definitions compared state by state
    iam.py          IAM statement changes and whether they widen access
    network.py      security-group rule changes and whether they widen network reach
    drift.py        drift detection on a deployed stack tree (--drift), what the deploy reverts
    report.py       Report, StackDiff, ResourceChange, data-loss risks, broken exports; diff_templates
                    assembles everything
    render.py       text, Markdown and JSON
    cli.py          `python -m generator diff`: arguments, loading, exit codes

The package re-exports the public names: `from generator.diff import diff_templates, render`. The name
`render` here is the function (it hides the submodule); reach the module's other names with
`from generator.diff.render import ...`.
"""

from generator.aws_facts import NESTED_STACK_TYPE, create_only
from generator.diff.blast import Consequence, blast_radius
from generator.diff.iam import INLINE_POLICY_LISTS, POLICY_PROPERTIES, IamChange, iam_changes
from generator.diff.network import SgChange, SgRule, sg_changes, sg_rules
from generator.diff.render import JSON_FORMAT_VERSION, render
from generator.diff.replacement import MAY_BE_REPLACED, REPLACED, replacement_for, worst
from generator.diff.report import (
                                   ATTRIBUTES,
                                   DataLossRisk,
                                   EntryChange,
                                   ExportChange,
                                   Report,
                                   ResourceChange,
                                   StackDiff,
                                   data_loss_risks,
                                   diff_resources,
                                   diff_stack,
                                   diff_templates,
                                   export_changes,
)
from generator.diff.values import IDENTITY_KEYS, MISSING, Change, compact, diff_values, path_text, ref_name
from generator.diff.workflow import (
                                   STATE_MACHINE_TYPE,
                                   StateChange,
                                   WorkflowDiff,
                                   definition_of,
                                   diff_definitions,
                                   flatten_states,
)

__all__ = [
                                   "ATTRIBUTES",
                                   "IDENTITY_KEYS",
                                   "INLINE_POLICY_LISTS",
                                   "JSON_FORMAT_VERSION",
                                   "MAY_BE_REPLACED",
                                   "MISSING",
                                   "NESTED_STACK_TYPE",
                                   "POLICY_PROPERTIES",
                                   "REPLACED",
                                   "STATE_MACHINE_TYPE",
                                   "Change",
                                   "Consequence",
                                   "DataLossRisk",
                                   "EntryChange",
                                   "ExportChange",
                                   "IamChange",
                                   "Report",
                                   "ResourceChange",
                                   "SgChange",
                                   "SgRule",
                                   "StackDiff",
                                   "StateChange",
                                   "WorkflowDiff",
                                   "blast_radius",
                                   "compact",
                                   "create_only",
                                   "data_loss_risks",
                                   "definition_of",
                                   "diff_definitions",
                                   "diff_resources",
                                   "diff_stack",
                                   "diff_templates",
                                   "diff_values",
                                   "export_changes",
                                   "flatten_states",
                                   "iam_changes",
                                   "path_text",
                                   "ref_name",
                                   "render",
                                   "replacement_for",
                                   "sg_changes",
                                   "sg_rules",
                                   "worst",
]
