"""Model configs, one module per model: ``get_config(variant) -> jaxuad.config.Config``.

This folder is installed as the package ``jaxuad.configs`` (see pyproject.toml), so
``jaxuad-train --model NAME`` finds ``NAME.py`` here from any folder. A config file of your
own, built the same way, is passed as ``--model path/to/file.py``.
"""
