"""tlcore: fine-tune a pretrained image classifier on a folder of pictures.

Importing the package is cheap: TensorFlow and Keras load only when a function
that needs them runs, so the Streamlit server and quick CLI commands stay light.
"""

import os as _os

# TensorFlow's C++ start-up chatter would bury the messages meant for the user.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
_os.environ.setdefault("GLOG_minloglevel", "3")

__version__ = "0.1.0"
