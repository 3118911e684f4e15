"""The browser UI: Chainlit callbacks, the data layer over Afina's tables, login."""

import os
from pathlib import Path

# Chainlit reads its config folder (.chainlit/, public/) from this variable when imported,
# and writes one into the working directory otherwise: point it here before any import.
os.environ["CHAINLIT_APP_ROOT"] = str(Path(__file__).resolve().parent)
