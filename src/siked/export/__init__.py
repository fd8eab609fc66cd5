"""Sharing a finished run in the formats the field uses: `datasets` for the teacher data and the
training mixes (`siked export data`), a `transformers` folder with a model card for the student
(`siked export model`), either optionally pushed to the Hugging Face Hub."""

from siked.export.common import ExportError, RunArtifacts
from siked.export.data import export_data
from siked.export.hub import push_folder
from siked.export.model import export_model

__all__ = ["ExportError", "RunArtifacts", "export_data", "export_model", "push_folder"]
