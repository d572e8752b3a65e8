"""The data plane: the frame step shared by every engine, and the engines that feed it."""
