"""The command-line programs: train.py, test.py, stylize.py and app.py in a clone, gan-train, gan-translate,
gan-stylize and gan-app once installed (gan-export and gan-evaluate are gan.export and gan.evaluate). Each is
a thin `main(argv)` over the package."""
