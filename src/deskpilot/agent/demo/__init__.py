"""The bundled scripted demo (``deskpilot demo``): see :mod:`deskpilot.agent.demo.runner`."""

from .runner import DEMO_SCREEN, DemoResult, DemoScript, load_script, run_demo

__all__ = ["DEMO_SCREEN", "DemoResult", "DemoScript", "load_script", "run_demo"]
