"""The notes service: a Pyramid app on SQLite. Entry points: webapp.wsgi, python -m webapp."""

import warnings

# Pyramid 2.1 imports pkg_resources, which setuptools now flags on every start; the
# lock pins a setuptools that still ships it.
warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
