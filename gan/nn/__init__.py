"""Networks (generators that declare their band programs, discriminators, the reference zoo's layout), the
band-program vocabulary (bandprog), and the losses with the one VGG19 feature extractor."""
