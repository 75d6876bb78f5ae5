"""The local SageMaker service: state, control plane and the app that serves it beside the
runtime API on one port. Builds on the emulator core (spec, artifacts, backend, endpoint);
the core never imports from here."""
