"""Hooks of the schema fuzzing that .ci/schemathesis runs.

A round with `wait_for_model: true` waits until the campaign's model has trained on every
label, and answers 503 `unavailable` by design once `--wait-timeout` passes: a campaign that
the fuzzer creates may train for a million steps, so such rounds would end in that documented
503. Generated rounds therefore do not wait; the waiting itself is covered by the
integration tests (`cli/tests/api/rounds.rs`, `model.rs`). Only a valid `true` is turned
off, so a body that is invalid on purpose stays invalid.
"""

import schemathesis


@schemathesis.hook("map_body").apply_to(name="POST /rounds")
def rounds_do_not_wait_for_models(context, body):  # type: ignore[no-untyped-def]
    if isinstance(body, dict) and body.get("wait_for_model") is True:
        body["wait_for_model"] = False
    return body
