"""PyInstaller runtime hook: runs in the built app before fastslow_desktop is imported."""

import os
import sys

# A --cpu-only build leaves out the CUDA libraries torch only loads on a GPU (cuDNN engines, cuSOLVER, ...);
# hiding the GPUs keeps torch on the CPU, where it never needs them.
if os.path.exists(os.path.join(getattr(sys, "_MEIPASS", ""), "fastslow-cpu-only")):
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
