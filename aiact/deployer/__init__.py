"""The deployer: the only identity that changes production serving and appends to the ledger.

A pipeline's deployment stage does not deploy. On a cluster it creates a `DeploymentRequest`
(aiact.eu/v1, manifests/deployer) in its own namespace and watches the request's status; the
deployer controller (`aiact.deployer.operator`, a kopf operator running in aiact-system under its
own ServiceAccount) takes the request, re-verifies the chain of custody and the approval itself
(`aiact.deployer.authorise`), renders the KServe `InferenceService` for the strategy
(`aiact.deployer.render`), applies it in the serving namespace of the request's environment,
waits until KServe reports it Ready, appends the write-once ledger entry with the applied
objects' digests and writes the outcome to the request's status (`aiact.deployer.reconcile`).
The pipeline's service account can create requests but cannot write InferenceServices in the
serving namespaces, the requests' status, or the ledger (RBAC in manifests/deployer; the ledger's
S3 credentials live only in the controller's Secret).

Without a cluster (the local approval backend, `aiact run-local`) the stage runs the same
reconcile function in-process with `NoCluster`: nothing is applied anywhere, the entry says so.
"""

from __future__ import annotations

GROUP = "aiact.eu"
VERSION = "v1"
PLURAL = "deploymentrequests"
KIND = "DeploymentRequest"

DEPLOY = "deploy"
ROLLBACK = "rollback"
ACTIONS = (DEPLOY, ROLLBACK)

PENDING = "Pending"
SUCCEEDED = "Succeeded"
FAILED = "Failed"
FINAL_PHASES = (SUCCEEDED, FAILED)

FIELD_MANAGER = "aiact-deployer"
