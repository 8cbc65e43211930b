"""agent_noisy_command: the spoken commands of agent_tool_call (1-4 per episode, one voice where
the pool allows) under heavy noise and in a reverberant room; after each command's last word, a
respond turn with the tool call (``tool_call``: {"name", "arguments"} as JSON) and a short
spoken confirmation (``text``), as in agent_tool_call, whose module says why the call travels
that way.

Noise: a bed from the noise pool (MUSAN, WHAM!, DNS noise) under the whole episode; each
command asks the renderer for a signal-to-noise ratio drawn in [-5, 5] dB (the episode's draw
plus up to 1.5 dB per command): the renderer sets the command's level over the noise under it,
measured over the command's active frames, and records what it reached in segments.snr_db
beside the target in segments.attrs.target_snr_db. No other sound lies under a command, so that
SNR is the command over the noise.

Room: every command of an episode is heard in one room, an impulse response of the rir pool
(DNS Challenge SLR26 simulated and SLR28 real rooms), convolved from its direct path on (word
timings hold); segments.attrs.rir names the response and attrs.room its facts (t60_s, c50_db,
source, real). The pool is required: the renderer reverberates with a response clip only (a
simulated room without a clip needs a renderer change).

Shared planning: recipes/_tools.py; layout: manifests/tools/episodes.yaml."""
from streamaudio.plan import (AnswerTemplates, EpisodePlan, InstructionBank, PlanContext, PoolSpec, Recipe,
                              YamlTable)

from ._tools import ToolRegistry, plan_commands


def plan(ctx: PlanContext) -> EpisodePlan:
    return plan_commands(ctx, ctx.tables["episodes"]["agent_noisy_command"], noisy=True)


RECIPE = Recipe(
    subtask="agent_noisy_command", ability="environment_agent", version="1",
    pools={"commands": PoolSpec("speech", requires=("words", "intent"),
                                description="spoken commands (the prompts corpus: agent_commands.yaml)"),
           "noise": PoolSpec("noise", description="heavy continuous noise (MUSAN, WHAM!, DNS noise)"),
           "rir": PoolSpec("rir", description="room impulse responses (DNS Challenge SLR26/28)")},
    tables={"confirmations": AnswerTemplates("tools/confirmations.yaml"),
            "tools": ToolRegistry("tools/tools.yaml", "tools/commands.yaml", confirmations="confirmations"),
            "episodes": YamlTable("tools/episodes.yaml"),
            "instructions": InstructionBank("instructions/agent_noisy_command.yaml")},
    plan=plan, description=__doc__,
)
