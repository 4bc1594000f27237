"""Job control on DynamoDB, shared by the API function and the scheduler: `records` (the items, their encoding, reads,
the status index's pages), `lifecycle` (submit, admit, release, reconcile, notify) and `uploads` (sources into the
media bucket through presigned URLs; the open upload recorded under `#upload#<videoId>`).

One item per video and attempt (contract.PARTITION_KEY, contract.SORT_KEY). A control item holds `running`, the
number of slots taken, and `nextSeq`, the submission counter. Every change of a job's status that takes or frees a
slot is one DynamoDB transaction with the control item, so `running` always equals the number of RUNNING jobs and
never exceeds the cap, however many API and scheduler instances race:

    claim:   job QUEUED -> RUNNING   with running + 1, if running < cap
    release: job RUNNING -> ended    with running - 1, if the job is still RUNNING under that execution

Neither module keeps state: every function takes what it works on (a records.Store, a lifecycle.Control), which each
handler builds per invocation from its environment and the clients it keeps (api.CLIENTS, scheduler.CLIENTS).
"""
