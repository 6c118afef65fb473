"""The `kubelite` command: kubectl's verbs and flags over the kubelite API."""
