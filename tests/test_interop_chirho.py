"""Interop (issue 15, item 6): ChiRho's twin-world counterfactuals over a causal VAE's own
Pyro mechanisms give the counterfactual labels of our abduct / act / predict.

The graph is the label part of the Morpho-MNIST SCM, widened: a discrete root ``d``, the
gamma root ``x`` (thickness), ``y`` = 64 + 191 * sigmoid(a_d + b_d x + s_d U) (intensity,
its mechanism depending on ``d``) and ``w`` = softplus(a + b y + s U) downstream of it. The
model learns the mechanisms of ``y`` and ``w`` (conditional affine flows); they are set here
away from the graph's values, as training would leave them, so that only the model's current
mechanisms can explain both sides' answers.

ChiRho runs the model's mechanisms (:func:`causalvae.flows.mechanism_distribution`:
N(0, 1) through the affine flow and the link) under ``MultiWorldCounterfactual``, ``do`` and
``condition`` on the fully observed factual labels. It abducts the noise of every
conditioned site downstream of an intervention itself, by inverting the site's transform
(its ``{name}_noise_prior`` site, shared by the twin worlds), so its counterfactual world
and ours are computed independently: it in torch, we in float64 numpy
(:mod:`causalvae.continuous`). Measured over the five interventions below: over the model's
own float32 modules, relative error below 5e-7 (absolute up to 5e-5 on values near 255);
over a float64 copy of them, absolute error below 1e-13, U included.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from causalvae import continuous as C
from causalvae import queries
from causalvae.flows import mechanism_distribution
from causalvae.graph import Graph
from causalvae.model import CausalVAE
from causalvae.nets import NetConfig

pyro = pytest.importorskip("pyro")
pytest.importorskip("chirho")
import pyro.distributions as dist
from chirho.counterfactual.handlers import MultiWorldCounterfactual
from chirho.indexed.ops import IndexSet, gather
from chirho.interventional.handlers import do
from chirho.observational.handlers import condition

SPEC = {
    "name": "morpho-labels",
    "variables": [
        {"name": "d", "values": ["a", "b"], "cpt": [0.3, 0.7]},
        {"name": "x", "type": "continuous", "distribution": {"family": "gamma", "concentration": 10, "rate": 5, "shift": 0.5}},
        {"name": "y", "type": "continuous", "parents": ["x", "d"],
         "mechanism": {"link": "sigmoid", "lo": 64, "hi": 255, "intercept": {"a": -5, "b": -4},
                       "weights": {"x": {"a": 2, "b": 1.5}}, "scale": {"a": 0.5, "b": 0.8}}},
        {"name": "w", "type": "continuous", "parents": ["y"],
         "mechanism": {"link": "softplus", "intercept": -1, "weights": {"y": 0.02}, "scale": 0.3}},
    ],
    "image": {"name": "image", "parents": ["d", "x", "y"]},
}
UNITS = 8
#: ChiRho in float32 (the model's own modules; values up to 255) or float64 (a copy of them)
#: against ours in float64: (rtol, atol).
TOLERANCE = {torch.float32: (1e-6, 1e-5), torch.float64: (1e-10, 1e-10)}


@pytest.fixture(scope="module")
def vae():
    torch.manual_seed(0)
    cfg = NetConfig(image_size=16, channels=1, parent_dims=(2, 1, 1), depth=2, width=8, hidden=16,
                    parent_stats=(None, (2.5, 0.7), (160.0, 40.0)))
    model = CausalVAE(Graph.from_dict(SPEC, source="test"), cfg, learn_cpts=["y", "w"])
    with torch.no_grad():  # "learned": away from the graph's values
        model.mechanisms["y"].intercept.copy_(torch.tensor([-4.6, -3.7]))
        model.mechanisms["y"].weights.copy_(torch.tensor([[1.8], [1.3]]))
        model.mechanisms["y"].log_scale.copy_(torch.log(torch.tensor([0.45, 0.9])))
        model.mechanisms["w"].intercept.fill_(-0.8)
        model.mechanisms["w"].weights.fill_(0.025)
        model.mechanisms["w"].log_scale.fill_(float(np.log(0.25)))
    model.eval()
    return model


@pytest.fixture(scope="module")
def factual(vae):
    """Units drawn from the model's current mechanisms (both values of ``d`` among them)."""
    s = C.sample(vae.current_graph(), UNITS, seed=1)
    assert set(s.values["d"].tolist()) == {0, 1}
    return s.values


def program(vae: CausalVAE, mechanisms: torch.nn.ModuleDict, n: int) -> dict[str, torch.Tensor]:
    """The model's label mechanisms as a plain Pyro program, one sample site per variable."""
    graph = vae.current_graph()
    values: dict[str, torch.Tensor] = {}
    with pyro.plate("units", n, dim=-1):
        for name in graph.topological_order:
            var = graph[name]
            if C.is_continuous(var):
                flow = mechanisms[name] if name in mechanisms else None
                values[name] = pyro.sample(name, mechanism_distribution(var.law, values, flow))
            else:
                values[name] = pyro.sample(name, dist.Categorical(probs=vae.cpt(name)))
    return values


def chirho_counterfactual(vae: CausalVAE, observed: dict[str, np.ndarray], actions: dict[str, int | float], dtype=torch.float32):
    """ChiRho's factual and counterfactual worlds and its trace, given every label observed:
    over the model's own mechanisms (float32), or a float64 copy of them."""
    graph = vae.current_graph()
    mechanisms = vae.mechanisms if dtype == torch.float32 else copy.deepcopy(vae.mechanisms).to(dtype)
    data = {k: torch.as_tensor(v) if not C.is_continuous(graph[k]) else torch.tensor(v, dtype=dtype) for k, v in observed.items()}
    acts = {k: torch.tensor(v) if not C.is_continuous(graph[k]) else torch.tensor(v, dtype=dtype) for k, v in actions.items()}
    with MultiWorldCounterfactual(first_available_dim=-2), do(actions=acts), condition(data=data):
        with pyro.poutine.trace() as tr:
            values = program(vae, mechanisms, UNITS)
        factual = {k: gather(v, IndexSet(**{a: {0} for a in acts})) for k, v in values.items()}
        counter = {k: gather(v, IndexSet(**{a: {1} for a in acts})) for k, v in values.items()}

    def flat(d):
        return {k: v.detach().reshape(-1).double().numpy() for k, v in d.items()}

    return flat(factual), flat(counter), tr.trace


ACTIONS = [
    {"x": 1.7},  # the root: y and w follow
    {"d": "a"},  # the discrete root switches y's mechanism
    {"y": 200.0},  # mid-chain: only w follows
    {"d": "b", "x": 2.2},  # two at once
    {"w": 3.0},  # a leaf: nothing else moves
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: ",".join(f"{k}={v}" for k, v in a.items()))
def test_chirho_twin_worlds_give_our_counterfactual_labels(vae, factual, action, dtype):
    rtol, atol = TOLERANCE[dtype]
    graph = vae.current_graph()
    images = torch.zeros(UNITS, 1, 16, 16, dtype=torch.uint8)
    labels = torch.from_numpy(factual["d"][:, None])
    cont = torch.tensor(np.stack([factual[c] for c in vae.continuous_columns], 1))
    unit = queries.abduct(vae, images, labels, cont, seed=0)
    acts = queries.act(graph, action)
    _, ours = queries.predict(vae, unit, acts)

    fw, cf, trace = chirho_counterfactual(vae, factual, acts, dtype)
    for name in graph.names:
        # the factual world is the observation; the counterfactual one is ours
        np.testing.assert_allclose(fw[name], factual[name], rtol=rtol, atol=atol, err_msg=f"factual {name}")
        np.testing.assert_allclose(cf[name], ours[name], rtol=rtol, atol=atol, err_msg=f"counterfactual {name} under {action}")
    touched = np.any([factual[a] != v for a, v in acts.items()], axis=0)  # units the action changes
    assert touched.any()
    downstream = [n for n in graph.topological_order if n in graph.descendants(acts) and n not in acts]
    for name in graph.names:
        if name in acts:  # the intervened variable takes its value
            np.testing.assert_allclose(cf[name], acts[name], rtol=rtol)
        elif name in downstream:  # it moves exactly in the units whose intervention does
            moved = np.abs(cf[name] - factual[name]) > 1e-3
            np.testing.assert_array_equal(moved, touched, err_msg=name)
        else:  # a non-descendant keeps its factual value
            np.testing.assert_allclose(cf[name], factual[name], rtol=rtol, atol=atol)
    # ChiRho abducts the noise of each conditioned descendant itself: it is our U
    assert [n for n in graph.names if f"{n}_noise_prior" in trace.nodes] == downstream
    for name in downstream:
        u = trace.nodes[f"{name}_noise_prior"]["value"].detach().double().numpy().reshape(-1, UNITS)
        np.testing.assert_allclose(u, np.broadcast_to(unit.noise[name], u.shape), rtol=10 * rtol, atol=atol)


def test_the_learned_mechanisms_not_the_graphs_are_compared(vae, factual):
    """The graph's own mechanisms give other counterfactuals: the agreement above is about
    the model's learned flows, which both sides read."""
    act = {"d": factual["d"], "x": 1.7}
    by_graph = C.propagate(vae.graph, C.abduct(vae.graph, factual), act)
    by_model = C.propagate(vae.current_graph(), C.abduct(vae.current_graph(), factual), act)
    assert np.all(np.abs(by_graph["y"] - by_model["y"]) > 0.1)
