"""How a graded call's request and reply cross the socket between the grader and the kernel: a frame is its
length (8 bytes, little-endian), then its bytes. Standard library only: the grader's process imports no torch."""

import struct

FRAME = struct.Struct("<Q")
