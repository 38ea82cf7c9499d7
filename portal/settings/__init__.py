"""Settings packages: ``base`` (shared), ``local`` (embedded demo), ``test`` and ``production``."""
