"""Train Keras models and export them as SavedModels into the model repository.

Run `python -m training --help`. One module per model family (mnist, cifar10, imdb,
inception_v3); `data` finds the datasets, `preprocessing` and `signatures` build what goes
into the graphs, `export` writes versions atomically.
"""
