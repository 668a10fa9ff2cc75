"""Neuron-update policies: which state updates of a spiking network are counted, and the one rule
that counts them from what a simulation recorded (NumPy only; any network, exact or biophysical).

A policy is declared per run (``--updates clock|gated|event``):

* ``clock``: every cell at every time step (a clocked simulator). Counted as ticks (steps in which
  a group ran) x the group's neurons.
* ``gated``: a layer's cells only in the steps in which the layer can change; the simulation
  really skips the idle layers (it runs only the active groups in each phase of the image
  period). Counted as for ``clock``, from the ticks of the gated run.
* ``event``: a cell at each step in which it receives a synaptic event or emits one (what an
  asynchronous chip does). Counted as distinct (neuron, step) pairs of recorded events.

How a result's neuron updates were obtained is recorded with its other counts under
:data:`hcs_neuro.core.spiking_result.COUNT_BASIS_KEY` (``basis``, ``how`` and ``policy``).
"""

from __future__ import annotations

import numpy as np

from hcs_neuro.core.errors import ConfigError

__all__ = ["UPDATE_POLICIES", "DEFAULT_UPDATES", "check_update_policy", "count_updates"]

#: Neuron-update policies, in the order of the ``--updates`` choices.
UPDATE_POLICIES = ("clock", "gated", "event")
#: The default policy (every cell at every step: the figure of earlier reports, now counted).
DEFAULT_UPDATES = "clock"


def check_update_policy(updates) -> str:
    """``updates`` if it names a policy of :data:`UPDATE_POLICIES`.

    Raises
    ------
    ConfigError
        Any other value (the message names the allowed ones).
    """
    if not isinstance(updates, str) or updates not in UPDATE_POLICIES:
        raise ConfigError(f"updates = {updates!r}: allowed {', '.join(UPDATE_POLICIES)}")
    return updates


def count_updates(policy: str, n_images: int, *, n_neurons: int = 0, tick_image=None, event_image=None,
                  event_step=None, event_neuron=None) -> np.ndarray:
    """Neuron updates per image under a policy, from what the simulation recorded.

    Parameters
    ----------
    policy : {"clock", "gated", "event"}
    n_images : int
    n_neurons : int
        Neurons of the groups the ticks belong to (clock, gated).
    tick_image : array of int
        clock, gated: the image of every step in which those groups ran (e.g. an event monitor
        of an event that fires once per step in which the group runs).
    event_image, event_step, event_neuron : arrays of int
        event: one entry per event a neuron received (e.g. a monitored presynaptic spike expanded
        through the synapse table) or emitted, with its image, step and neuron. A neuron is
        updated once per step with at least one event.

    Returns
    -------
    ndarray of int64, shape (n_images,)

    Raises
    ------
    ConfigError
        An unknown policy.
    """
    check_update_policy(policy)
    if policy in ("clock", "gated"):
        ticks = np.bincount(np.asarray(tick_image, dtype=np.int64), minlength=n_images)[:n_images]
        return ticks.astype(np.int64) * int(n_neurons)
    key = np.stack([np.asarray(event_image, dtype=np.int64), np.asarray(event_step, dtype=np.int64),
                    np.asarray(event_neuron, dtype=np.int64)])
    if key.shape[1] == 0:
        return np.zeros(n_images, np.int64)
    uniq = np.unique(key, axis=1)
    return np.bincount(uniq[0], minlength=n_images)[:n_images].astype(np.int64)
