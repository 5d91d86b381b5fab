"""Hydra's plugin scan finds cnnexp's search path plugin and user config source here (hydra_plugins is Hydra's
namespace for plugins). The code lives in cnnexp.conf.search_path; it changes nothing for other Hydra apps."""

from cnnexp.conf.search_path import CnnexpSearchPathPlugin, UserConfigSource

__all__ = ["CnnexpSearchPathPlugin", "UserConfigSource"]
