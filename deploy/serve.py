"""Serve the exported model over HTTP: python deploy/serve.py [--port 8000] [--help]"""

from mnist_paddle.serving.serve import main

if __name__ == "__main__":
    main()
