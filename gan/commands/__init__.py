"""Every command-line program, each a thin `main(argv)` over the package:

    train, translate, stylize, app     train.py, test.py, stylize.py, app.py in a clone
    export, evaluate, hub, zoo         python -m gan.export / gan.evaluate / gan.hub / gan.zoo (thin shims)

and, installed, gan-train, gan-translate, gan-stylize, gan-app, gan-export, gan-evaluate, gan-hub, gan-zoo."""
