"""agent_tool_call: a user in a room (a quiet background bed, now and then an unrelated everyday
sound) says 1-4 spoken commands ("Turn off the kitchen lights in ten minutes."), spaced out, in
one voice where the pool allows. After each command's last word (evidence: the command's
segment), a respond turn carries the tool call and a short spoken confirmation; the unrelated
sounds, and the pause when a user stops mid-command, get stay_silent turns.

How the call travels: the turn's ``tool_call`` column holds the call as JSON,
``{"name": "set_lights", "arguments": {"room": "kitchen", "state": "off", "delay_s": 600}}``,
and its ``text`` is what the assistant says ("Okay, I'll turn off the kitchen lights in ten
minutes."). That is the shape a trainer of a tool-using model expects: an assistant message
with content plus a structured tool call (OpenAI ``tool_calls``, Hermes/Qwen ``<tool_call>``
blocks are both rendered from it), the JSON never mixed into the spoken text a TTS would read
out, and ``text`` stays non-empty as the format requires of a respond turn. The system prompt
ends with the definitions of the tools the model may call (the ones the episode calls plus
others at random, each {"name", "description", "parameters": JSON Schema}), as a tool-use
prompt gives them.

Data: the registry manifests/tools/ (one JSON Schema per tool, tools.yaml, commands.yaml: what
each spoken command calls, confirmations.yaml), the spoken commands
manifests/spoken_prompts/agent_commands.yaml (labels [agent_cmd_<group>, "tool_call=<key>"]),
the layout manifests/tools/episodes.yaml. Every call validates against its tool's schema when
the table is resolved and again when planned. Shared with agent_noisy_command: recipes/_tools.py."""
from streamaudio.plan import (AnswerTemplates, EpisodePlan, InstructionBank, PlanContext, PoolSpec, Recipe,
                              YamlTable)

from ._tools import ToolRegistry, plan_commands


def plan(ctx: PlanContext) -> EpisodePlan:
    return plan_commands(ctx, ctx.tables["episodes"]["agent_tool_call"], noisy=False)


RECIPE = Recipe(
    subtask="agent_tool_call", ability="environment_agent", version="1",
    pools={"commands": PoolSpec("speech", requires=("words", "intent"),
                                description="spoken commands (the prompts corpus: agent_commands.yaml)"),
           "events": PoolSpec("sound", requires=("labels", "active_span"), optional=True,
                              description="everyday sounds heard between commands (AudioSet)"),
           "noise": PoolSpec("noise", description="quiet room beds")},
    tables={"confirmations": AnswerTemplates("tools/confirmations.yaml"),
            "tools": ToolRegistry("tools/tools.yaml", "tools/commands.yaml", confirmations="confirmations"),
            "episodes": YamlTable("tools/episodes.yaml"),
            "instructions": InstructionBank("instructions/agent_tool_call.yaml")},
    plan=plan, description=__doc__,
)
