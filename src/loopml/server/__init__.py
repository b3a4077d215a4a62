"""loopml server: the workspace over HTTP for a team (an interface over the SDK and its stores)."""
