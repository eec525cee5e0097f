"""stroketrial: acute ischemic stroke trials from protocol to primary analysis."""

__version__ = "0.1.0"
