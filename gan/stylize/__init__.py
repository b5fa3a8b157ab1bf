"""Neural style transfer: optimisation (Gatys et al.) and feed-forward stylization with a content + style
network (optimise), colour preservation (colour)."""
