"""The recipe API: plans, pools, recipes and the table providers recipes declare.

    from streamaudio.plan import (EpisodePlan, PlanContext, PlanError, PoolSpec, Recipe,
                                  SegmentPlan, TurnPlan, background_bed, pick, speech_end)
    from streamaudio.plan import InstructionBank, PolicyTable, CuratedScenarios, YamlTable
    from streamaudio.plan import AnswerTemplates, ClauseAlignment, Translations, UtteranceSummaries

See docs/recipes.md.
"""
from ..text.clauses import ClauseAlignment, Translations
from ..text.curation import CuratedScenarios
from ..text.summaries import UtteranceSummaries
from ..text.tables import InstructionBank, PolicyTable, TableProvider, YamlTable
from ..text.templates import AnswerTemplates
from .pools import Pool, PoolData
from .recipes import PoolSpec, Recipe, RecipeError, load_recipes
from .types import (EpisodePlan, EpisodeRejected, PlanContext, PlanError, RenderError, SegmentPlan, TurnPlan,
                    background_bed, pick, speech_end)


def episode_seed(catalog_seed: int, episode_id: str) -> int:
    """Per-episode seed: independent of worker count, order and every other episode."""
    import hashlib

    digest = hashlib.sha256(f"{catalog_seed}:{episode_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


__all__ = ["AnswerTemplates", "ClauseAlignment", "CuratedScenarios", "Translations", "UtteranceSummaries", "EpisodePlan", "EpisodeRejected", "InstructionBank", "PlanContext", "PlanError",
           "PolicyTable", "Pool", "PoolData", "PoolSpec", "Recipe", "RecipeError", "RenderError", "SegmentPlan",
           "TableProvider", "TurnPlan", "YamlTable", "background_bed", "episode_seed", "load_recipes", "pick", "speech_end"]
