"""Ship a contract-passing image to ECR and a SageMaker endpoint with autoscaling, and take it
all down again.

Public API (the CLI in ``smlocal.cli.promote`` is a thin layer over it):

* :class:`~promote.request.PromoteRequest` — what to promote; :func:`validate_request` checks
  it against SageMaker's limits before any AWS call.
* :func:`~promote.deploy.prepare` (validate + contract gate, no AWS call) and
  :func:`~promote.deploy.execute` (run the steps in :mod:`promote.plan`, writing the manifest).
* :class:`~promote.manifest.Manifest` and :func:`~promote.cleanup.run_cleanup`.
* :mod:`promote.gate` — the contract-test gate and its ledger.

Modules are per AWS concern: ``ecr``, ``s3``, ``iam``, ``sagemaker``, ``autoscaling``,
``alarms``; errors are in :mod:`promote.errors`.
"""

if __name__ != "smlocal.promote":  # reached as the checkout's bare top-level folder
    raise ImportError(
        f"import smlocal.promote, not {__name__}: promote/ is installed as smlocal.promote"
    )
