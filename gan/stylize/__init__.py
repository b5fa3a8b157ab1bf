"""Neural style transfer: the options both ways share (options), colour preservation (colour) and optimisation
(optimise, Gatys et al.). A content + style network runs on photos in gan.inference.feedforward, and stylize.py's
file loop, which runs either, is gan.inference.stylize_files."""
