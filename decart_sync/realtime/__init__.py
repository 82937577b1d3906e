"""One realtime session on the event loop: the machinery under RealtimeClient.

``session`` is the state machine (connect, reconnect with replay); ``attempt``
what one connection owns; ``signaling`` and ``messages`` the control WebSocket
and what goes over it; ``acks`` the requests awaiting an answer; ``transports``
the media (LiveKit, plain WebRTC); ``tracks`` and ``clock`` the frames both ways
and their timing; ``audio`` the avatar's input audio; ``images`` reference
images; ``subscribe_tokens`` who may watch a session.
"""
